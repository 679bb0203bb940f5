//! `aya::Pod` for every type the daemon moves through maps.
use crate::{
    config::Config,
    dns::{Binding, BindingKey, NameKey, Pending, PendingKey},
    policy::{EgressKey, PathKey, PhasePolicy, SocketKey},
    tracking::{
        EgressCounts, FastEntry, RateState, ReadKey, SlotState, SyscallCounts, TaskEntry, Tracked,
    },
};

// Every type here is `#[repr(C)]`, `Copy`, built only of integers and arrays of integers,
// with explicit padding fields, so every bit pattern is a valid value.
// SAFETY: `#[repr(C)]`, `Copy`, integers and arrays of integers with explicit padding.
unsafe impl aya::Pod for Config {}
// SAFETY: `#[repr(C)]`, `Copy`, integers and arrays of integers with explicit padding.
unsafe impl aya::Pod for Tracked {}
// SAFETY: `#[repr(C)]`, `Copy`, integers and arrays of integers with explicit padding.
unsafe impl aya::Pod for FastEntry {}
// SAFETY: `#[repr(C)]`, `Copy`, integers and arrays of integers with explicit padding.
unsafe impl aya::Pod for TaskEntry {}
// SAFETY: `#[repr(C)]`, `Copy`, integers and arrays of integers with explicit padding.
unsafe impl aya::Pod for SlotState {}
// SAFETY: `#[repr(C)]`, `Copy`, integers and arrays of integers with explicit padding.
unsafe impl aya::Pod for SyscallCounts {}
// SAFETY: `#[repr(C)]`, `Copy`, integers and arrays of integers with explicit padding.
unsafe impl aya::Pod for EgressCounts {}
// SAFETY: `#[repr(C)]`, `Copy`, integers and arrays of integers with explicit padding.
unsafe impl aya::Pod for ReadKey {}
// SAFETY: `#[repr(C)]`, `Copy`, integers and arrays of integers with explicit padding.
unsafe impl aya::Pod for PhasePolicy {}
// SAFETY: `#[repr(C)]`, `Copy`, integers and arrays of integers with explicit padding.
unsafe impl aya::Pod for PathKey {}
// SAFETY: `#[repr(C)]`, `Copy`, integers and arrays of integers with explicit padding.
unsafe impl aya::Pod for SocketKey {}
// SAFETY: `#[repr(C)]`, `Copy`, integers and arrays of integers with explicit padding.
unsafe impl aya::Pod for RateState {}
// SAFETY: `#[repr(C)]`, `Copy`, integers and arrays of integers with explicit padding.
unsafe impl aya::Pod for EgressKey {}
// SAFETY: `#[repr(C)]`, `Copy`, integers and arrays of integers with explicit padding.
unsafe impl aya::Pod for NameKey {}
// SAFETY: `#[repr(C)]`, `Copy`, integers and arrays of integers with explicit padding.
unsafe impl aya::Pod for BindingKey {}
// SAFETY: `#[repr(C)]`, `Copy`, integers and arrays of integers with explicit padding.
unsafe impl aya::Pod for Binding {}
// SAFETY: `#[repr(C)]`, `Copy`, integers and arrays of integers with explicit padding.
unsafe impl aya::Pod for PendingKey {}
// SAFETY: `#[repr(C)]`, `Copy`, integers and arrays of integers with explicit padding.
unsafe impl aya::Pod for Pending {}
