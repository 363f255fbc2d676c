"""Where the course runs and how fast: the device and environment report (``device``), timing and memory
measurement (``timing``), and making one device fast — mixed precision, ``torch.compile``, attention kernels
(``accel``, notebook 16)."""
