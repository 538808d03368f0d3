//! The proxy's side of the control plane: the wire types shared with the controller, and the
//! subscription that keeps this proxy's table in step with it.

pub mod protocol;
pub mod subscriber;
