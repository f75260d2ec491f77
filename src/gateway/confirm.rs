//! The gateway side of confirmation: a confirmed tool runs only on the user's own answer, asked
//! through the client (a form, or in the result) or on devgate's confirm page (see [`crate::confirm`]).

use serde_json::{Map, Value};

use super::ToolError;
use super::call::Call;
use crate::confirm::{Binding, Refusal};

/// The user's answer to a question devgate put to them during the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    Accepted,
    Declined,
}

/// How this call's client can put devgate's question to its user (see [`crate::confirm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// With a form elicitation during the call ([`Confirmer::confirm`]).
    Form,
    /// In the result (`input_required`, 2026-07-28); the client calls again with the answer and the
    /// `requestState` devgate issued ([`Confirmer::answer`]).
    InResult,
    /// Not at all: the user confirms on devgate's confirm page instead.
    None,
}

/// An answer a retried call carried, as the client sent it: only devgate checks whether it counts.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub accepted: bool,
    pub request_state: Option<&'a str>,
}

/// The client side of confirming a call (the MCP layer).
pub trait Confirmer: Send + Sync {
    fn channel(&self) -> Channel;
    /// Asks now ([`Channel::Form`]).
    fn confirm<'a>(
        &'a self,
        summary: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Confirmation> + Send + 'a>>;
    /// The answer this call brought back ([`Channel::InResult`]), if any.
    fn answer(&self) -> Option<Answer<'_>>;
}

impl Call<'_> {
    /// Runs only on an answer the user gave to devgate's own question about exactly this call (see
    /// [`crate::confirm`]); the agent's `confirm: true` counts for nothing.
    pub(super) async fn confirmed(
        &self,
        given: &Map<String, Value>,
        args: &Map<String, Value>,
        text_cap: usize,
    ) -> Result<(), ToolError> {
        let o = self.offered;
        let name = &o.tool.name;
        let summary = self.summary(given, args, text_cap).await?;
        let binding = Binding::new(self.user, name, given, &summary);
        let declined = || ToolError::NotConfirmed {
            tool: name.clone(),
            detail: format!(
                "the user did not confirm \"{summary}\"; nothing was sent to {}. Ask the user what they want instead.",
                o.client.title()
            ),
            declined: true,
        };
        let store_failed = |e: crate::vault::StoreError| {
            tracing::error!(error = %e, "the store failed while confirming a call");
            self.internal(
                "devgate could not record the confirmation because its database failed; nothing was sent. Try again shortly.",
            )
        };
        let channel = self.confirmer.map_or(Channel::None, |c| c.channel());
        match (channel, self.confirmer) {
            (Channel::Form, Some(confirmer)) => match confirmer.confirm(&summary).await {
                Confirmation::Accepted => Ok(()),
                Confirmation::Declined => Err(declined()),
            },
            (Channel::InResult, Some(confirmer)) => {
                if let Some(answer) = confirmer.answer() {
                    let checked = match answer.request_state {
                        Some(state) => {
                            self.confirmations
                                .check_answer(&binding, state, answer.accepted)
                                .await
                        }
                        None => Err(Refusal::Forged),
                    };
                    match checked {
                        Ok(()) if answer.accepted => return Ok(()),
                        Ok(()) => return Err(declined()),
                        Err(Refusal::Store(e)) => return Err(store_failed(e)),
                        Err(why) => {
                            tracing::info!(tool = %name, reason = %why, "an answer without a valid requestState: asking again");
                        }
                    }
                }
                Err(ToolError::NeedsConfirmation {
                    request_state: self.confirmations.request_state(&binding),
                    summary,
                })
            }
            _ => {
                if self
                    .confirmations
                    .take_approval(&binding)
                    .await
                    .map_err(store_failed)?
                {
                    return Ok(());
                }
                let link = self
                    .confirmations
                    .link(&binding)
                    .await
                    .map_err(store_failed)?;
                Err(ToolError::NotConfirmed {
                    tool: name.clone(),
                    declined: false,
                    detail: match link {
                        Some(link) => format!(
                            "this needs the user's confirmation, and this client cannot ask for it here. Ask the user to open this link, check and approve exactly this: \"{summary}\" {link} (it works once, for {} minutes). Once they have approved it, call again with the same arguments; nothing was sent yet.",
                            crate::confirm::TTL_SECS / 60
                        ),
                        None => format!(
                            "this needs the user's confirmation (\"{summary}\"), which this client cannot ask for here, and devgate has no confirm page to offer: that needs `public_url`, served by this devgate or by one sharing its store. Nothing was sent. To go ahead: use an MCP client with form elicitation, or set `public_url` so devgate serves a confirm page, or have an operator stop confirming this tool ([tools] confirm_destructive = false for destructive tools; leave it out of [tools] confirm otherwise)."
                        ),
                    },
                })
            }
        }
    }

    /// The sentence the user confirms ([`crate::confirm::summary`]): facts from the catalog's
    /// `confirm.summary` and the target as the `confirm.read` tool shows it, then every other argument,
    /// then the target's quoted free text.
    async fn summary(
        &self,
        given: &Map<String, Value>,
        args: &Map<String, Value>,
        text_cap: usize,
    ) -> Result<String, ToolError> {
        let tool = &self.offered.tool;
        let read = tool.spec.confirm.as_ref().and_then(|c| c.read.as_ref());
        let current = match read {
            Some(read) => self.sub(read, args, &Map::new(), text_cap).await?,
            None => Value::Null,
        };
        if let Some(refusal) = self.cannot_succeed(&current) {
            return Err(refusal);
        }
        Ok(crate::confirm::summary::render(tool, given, &current))
    }

    /// Why the call cannot succeed on the target as devgate just read it (the catalog's
    /// `confirm.refuse`, e.g. merging a merged PR): then the user is not asked to approve a call the
    /// provider would refuse, and the agent learns the state and the tool that shows it.
    fn cannot_succeed(&self, current: &Value) -> Option<ToolError> {
        let o = self.offered;
        let confirm = o.tool.spec.confirm.as_ref()?;
        let read = format!("{}_{}", o.tool.provider, confirm.read.as_ref()?);
        let (field, value) = confirm.refuse.iter().find_map(|(field, refused)| {
            let value = current.get(field)?.as_str()?;
            refused.iter().find(|r| *r == value).map(|r| (field, r))
        })?;
        Some(ToolError::Refused {
            tool: o.tool.name.clone(),
            detail: format!(
                "this cannot succeed while the target's {field} is {value} ({read} shows it), so the user was not asked and nothing was sent to {}. Tell the user, or read the target with {read} first.",
                o.client.title()
            ),
        })
    }
}
