//! The simulated accounts users sign in as: who they are on each provider.

use super::*;

/// A provider account the sim's tokens can belong to: two per provider, so two users can connect to
/// different accounts. The static tokens belong to the first ([`Account::first`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Account {
    /// Buddy user 1, Mike Benson (the seed's token owner).
    Mike,
    /// Buddy user 2, Nina Alvarez: member (admin) of `acme` only.
    Nina,
    /// Bitbucket's Ann Dev (the seed's token owner).
    Ann,
    /// Bitbucket's Ben Ortiz: sees `acme` and his own workspace `bortiz`.
    Ben,
}

impl Account {
    /// The provider's two accounts, first one first.
    pub const fn all(provider: Which) -> [Account; 2] {
        match provider {
            Which::Buddy => [Account::Mike, Account::Nina],
            Which::Bitbucket => [Account::Ann, Account::Ben],
        }
    }

    /// The account the static tokens belong to.
    pub const fn first(provider: Which) -> Account {
        Self::all(provider)[0]
    }

    pub const fn provider(self) -> Which {
        match self {
            Account::Mike | Account::Nina => Which::Buddy,
            Account::Ann | Account::Ben => Which::Bitbucket,
        }
    }

    /// The short name used on the consent page's `account` field, in recordings and in knobs.
    pub const fn login(self) -> &'static str {
        match self {
            Account::Mike => "mike",
            Account::Nina => "nina",
            Account::Ann => "ann",
            Account::Ben => "ben",
        }
    }

    /// The name the provider's `GET /user` answers (`name` on Buddy, `display_name` on Bitbucket).
    pub const fn display_name(self) -> &'static str {
        match self {
            Account::Mike => "Mike Benson",
            Account::Nina => "Nina Alvarez",
            Account::Ann => "Ann Dev",
            Account::Ben => "Ben Ortiz",
        }
    }

    /// The account of `provider` with this login.
    pub fn parse(provider: Which, login: &str) -> Option<Account> {
        Self::all(provider).into_iter().find(|a| a.login() == login)
    }

    /// Buddy's user id (1 or 2, as in the seed's people).
    pub(crate) const fn buddy_id(self) -> u64 {
        match self {
            Account::Nina => 2,
            _ => 1,
        }
    }

    /// Index into the Bitbucket seed's people (0 Ann, 1 Ben).
    pub(crate) const fn bitbucket_person(self) -> usize {
        match self {
            Account::Ben => 1,
            _ => 0,
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            Account::Mike => "Mike Benson (mike.benson@buddy.works)",
            Account::Nina => "Nina Alvarez (nina.alvarez@acme.dev)",
            Account::Ann => "Ann Dev (anndev)",
            Account::Ben => "Ben Ortiz (bortiz)",
        }
    }
}
