"""Fine-tuning SAM 2 on the model core with the semantics of Meta's training code (`SAM2Train`,
`MultiStepMultiMasksAndIous`, its optimizer and augmentations).

`prompting` simulates prompts, `clip_tracking` tracks a clip with every decoding kept, `loss` scores it, `clips`
draws clips from VOS datasets, `augmentation`, `optimizer`, `checkpoints`, `trainer` (the loop, DDP under torchrun),
`evaluation` (held-out J&F) and `command` (`sam2-plugins finetune`). Modules import torch; this package does not.
"""
