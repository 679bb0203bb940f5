//! `aya::Pod` for every type the daemon moves through maps.
use crate::{
    config::Config,
    policy::{EgressKey, PathKey, PhasePolicy, SocketKey},
    tracking::{
        EgressCounts, FastEntry, RateState, ReadKey, SlotState, SyscallCounts, TaskEntry, Tracked,
    },
};

// SAFETY: all of these are `#[repr(C)]`, `Copy`, built only of integers and arrays of
// integers, with explicit padding fields, so every bit pattern is a valid value.
unsafe impl aya::Pod for Config {}
unsafe impl aya::Pod for Tracked {}
unsafe impl aya::Pod for FastEntry {}
unsafe impl aya::Pod for TaskEntry {}
unsafe impl aya::Pod for SlotState {}
unsafe impl aya::Pod for SyscallCounts {}
unsafe impl aya::Pod for EgressCounts {}
unsafe impl aya::Pod for ReadKey {}
unsafe impl aya::Pod for PhasePolicy {}
unsafe impl aya::Pod for PathKey {}
unsafe impl aya::Pod for SocketKey {}
unsafe impl aya::Pod for RateState {}
unsafe impl aya::Pod for EgressKey {}
