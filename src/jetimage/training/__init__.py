"""What every training shares: the seeded split and the images streamed from HDF5, the model's
input definition stored with it, and model loading."""
