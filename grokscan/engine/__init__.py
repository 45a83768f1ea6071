"""The training engine (torch only, no ray): models, optimizers, gradient filters, losses, curve metrics,
packs and the training loop, and pack memory estimates. `engine.packing` is torch-free, so a driver can
plan packs without loading torch."""
