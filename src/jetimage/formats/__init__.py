"""Files: ROOT TTree layouts and readers of users' files, HDF5 image files, atomic writes, and the
errors that name a file."""
