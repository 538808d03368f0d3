//! The proxy's side of the control plane: the subscription that keeps this proxy's table in
//! step with a controller (the messages are `sluice_api::protocol`'s).

pub mod subscriber;
