//! The parameters of every write to the API server: each names its field manager, so that
//! `managedFields` and the conflicts of `kubectl apply --server-side` say who owns a field —
//! the controller for what it writes, the CLI for its commands.

/// The field manager of the controller's writes, so that `kubectl apply --server-side`
/// conflicts and `managedFields` name it.
pub const FIELD_MANAGER: &str = "sluice-controller";
/// The field manager of the CLI's commands.
pub const CLI_FIELD_MANAGER: &str = "sluice";

/// Patch parameters naming the controller as the field manager.
pub fn patch_params() -> kube::api::PatchParams {
    kube::api::PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..Default::default()
    }
}

/// Create/replace parameters naming the controller as the field manager.
pub fn post_params() -> kube::api::PostParams {
    kube::api::PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..Default::default()
    }
}
