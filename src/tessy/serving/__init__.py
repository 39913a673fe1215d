"""llama.cpp's own server for GGUF models on a CPU: built from source once, run by tessy."""
