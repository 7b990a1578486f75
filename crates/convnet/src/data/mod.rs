//! Data sets, batching, normalisation and jittering.
