//! Simulated Buddy.Works API: `/user`, `/workspaces/…` with page-based lists and `{"errors":[…]}` errors.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use super::{SimState, lock};

/// Seeded Buddy data; tool calls that change something change it.
#[derive(Debug, Clone)]
pub struct Data {
    pub user: Value,
}

impl Data {
    pub fn seed() -> Self {
        Self {
            user: json!({
                "url": "https://api.buddy.works/user",
                "html_url": "https://app.buddy.works/my-id",
                "id": 1,
                "name": "Mike Benson",
                "avatar_url": "https://app.buddy.works/image-server/user/0/0/0/0/0/0/1/d643744fbe5ebf2906a4d075a5b97110/w/32/32/AVATAR.png",
                "email": "mike.benson@buddy.works",
                "workspaces_url": "https://api.buddy.works/workspaces"
            }),
        }
    }
}

pub fn router() -> Router<Arc<SimState>> {
    Router::new().route("/user", get(get_user))
}

async fn get_user(State(state): State<Arc<SimState>>) -> axum::Json<Value> {
    axum::Json(lock(&state.buddy).user.clone())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn every_catalog_example_reaches_a_sim_route() {
        let failures = super::super::example_failures("buddy").await;
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
