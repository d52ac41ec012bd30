"""Ask for 50 GB at once; RLIMIT_AS must turn that into a MemoryError."""

buffer = bytearray(50 * 2**30)
print(len(buffer))
