"""FiftyOne plugin entry point (``fiftyone.yml``): everything lives in the installed ``sam2_plugins.fiftyone_plugin``.

Operators, panel and the J&F evaluation classes are imported from the package, so stored evaluation runs load by
their fully-qualified class names in any process, with or without this plugin folder.
"""

from sam2_plugins.fiftyone_plugin import register  # noqa: F401
