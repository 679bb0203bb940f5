//! Empty on purpose: the programs are the `paddock-bench-probes` binary. This library target
//! exists so `paddock-bench` can name this crate as a build dependency, which makes cargo
//! rebuild the bench when the programs change.
#![no_std]
