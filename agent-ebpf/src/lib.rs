//! Empty on purpose: the kernel programs are the `paddock-probes` binary. This library
//! target exists so `agent-daemon` can name this crate as a build dependency, which makes
//! cargo rebuild the daemon when the programs change.
#![no_std]
