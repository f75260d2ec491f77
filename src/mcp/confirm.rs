//! How a call's client is asked to confirm a destructive call: form elicitation, an `input_required`
//! result (2026-07-28), or none (the confirm page); and reading the answer it came back with.

use rmcp::RoleServer;
use rmcp::model::{
    CallToolRequestParams, ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationSchema,
    ProtocolVersion,
};
use rmcp::service::RequestContext;

use crate::gateway::{Answer, Channel, Confirmation, Confirmer};

/// The key of the confirmation in an `input_required` result and in the client's `inputResponses`.
pub(super) const CONFIRM_INPUT: &str = "confirm";

/// How this call's client can ask its user to confirm (see [`crate::confirm`]): a client that declared
/// form elicitation is asked, by an `elicitation/create` request up to 2025-11-25 or an `input_required`
/// result from 2026-07-28; the capabilities are this request's own on 2026-07-28 and the session's
/// before. A client that declared none (or a stateless request, whose capabilities are unknown) gets
/// the confirm page. The agent's arguments play no part.
pub(super) struct ClientConfirmer<'a> {
    pub(super) context: &'a RequestContext<RoleServer>,
    /// The answer the client sent with this (retried) call, if any.
    pub(super) answer: Option<bool>,
    /// The `requestState` it came back with.
    pub(super) request_state: Option<&'a str>,
}

impl Confirmer for ClientConfirmer<'_> {
    fn channel(&self) -> Channel {
        // `elicitation: {}` (no mode named) means form, as before modes existed.
        let form = self
            .context
            .client_capabilities()
            .and_then(|c| c.elicitation)
            .is_some_and(|e| e.form.is_some() || e.url.is_none());
        let modern = self
            .context
            .protocol_version()
            .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str());
        match (form, modern) {
            (true, true) => Channel::InResult,
            (true, false) => Channel::Form,
            (false, _) => Channel::None,
        }
    }

    fn confirm<'a>(
        &'a self,
        summary: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Confirmation> + Send + 'a>> {
        Box::pin(async move {
            match self
                .context
                .peer
                .create_elicitation(confirm_form(summary))
                .await
            {
                Ok(result) if result.action == ElicitationAction::Accept => Confirmation::Accepted,
                Ok(_) => Confirmation::Declined,
                Err(e) => {
                    tracing::info!(error = %e, "the client did not answer the confirmation");
                    Confirmation::Declined
                }
            }
        })
    }

    fn answer(&self) -> Option<Answer<'_>> {
        self.answer.map(|accepted| Answer {
            accepted,
            request_state: self.request_state,
        })
    }
}

/// The `inputResponses.confirm` of a retried call: accepted or not; `None` when it is no elicitation
/// result at all.
pub(super) fn confirm_answer(request: &CallToolRequestParams) -> Option<bool> {
    let answer = request.input_responses.as_ref()?.get(CONFIRM_INPUT)?;
    serde_json::from_value::<ElicitResult>(answer.clone())
        .ok()
        .map(|r| r.action == ElicitationAction::Accept)
}

/// The form a user answers to confirm: the summary, and nothing to fill in (accept or decline).
pub(super) fn confirm_form(summary: &str) -> ElicitRequestParams {
    ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: format!("{summary}. Go ahead?"),
        requested_schema: ElicitationSchema::builder().build_unchecked(),
    }
}
