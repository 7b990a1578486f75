//! Networks: layers (a block plus its parameters), chains and graphs, the model zoo,
//! description files and model files.
