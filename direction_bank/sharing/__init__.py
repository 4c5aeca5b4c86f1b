"""Moving directions and concepts between banks: the files (dbank safetensors, pix2pix-zero .pt) and
their import and export."""
