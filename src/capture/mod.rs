//! Live capture from the kernel: BPF loader, ring-buffer reader, control maps.
