//! Simulated Bitbucket Cloud API 2.0: `links` bloat, `{uuid}` braces, `next` URLs, Bitbucket errors.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use super::{SimState, lock};

/// Seeded Bitbucket data; tool calls that change something change it.
#[derive(Debug, Clone)]
pub struct Data {
    pub user: Value,
}

impl Data {
    pub fn seed() -> Self {
        Self {
            user: json!({
                "type": "user",
                "uuid": "{d301aafa-d676-4ee0-88be-962be7417567}",
                "account_id": "557058:c0b72ad0-1cb5-4018-9cdc-0cde8492c443",
                "display_name": "Ann Dev",
                "nickname": "anndev",
                "account_status": "active",
                "has_2fa_enabled": null,
                "is_staff": false,
                "created_on": "2019-03-04T10:11:12.123456+00:00",
                "links": {
                    "self": {"href": "https://api.bitbucket.org/2.0/users/%7Bd301aafa-d676-4ee0-88be-962be7417567%7D"},
                    "html": {"href": "https://bitbucket.org/%7Bd301aafa-d676-4ee0-88be-962be7417567%7D/"},
                    "avatar": {"href": "https://secure.gravatar.com/avatar/0?d=https%3A%2F%2Favatar-management--avatars.us-west-2.prod.public.atl-paas.net%2Finitials%2FAD-5.png"}
                }
            }),
        }
    }
}

pub fn router() -> Router<Arc<SimState>> {
    Router::new().route("/user", get(get_user))
}

async fn get_user(State(state): State<Arc<SimState>>) -> axum::Json<Value> {
    axum::Json(lock(&state.bitbucket).user.clone())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn every_catalog_example_reaches_a_sim_route() {
        let failures = super::super::example_failures("bitbucket").await;
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
