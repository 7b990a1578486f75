//! LIBLINEAR formulations (to be written).
