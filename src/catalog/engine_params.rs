//! The parameters the engine adds to tools on its own (`cursor`, `offset`, `tail`, `fields`, `wait`,
//! `confirm`), declared once: which tools take them, how `tools/list` shows them, how a value is
//! checked. A catalog may not declare them, and they never reach the provider as such.

use super::Tool;

/// The cursor of the next page, on lists.
pub const CURSOR_PARAM: &str = "cursor";
/// Where a text window starts, on text tools.
pub const OFFSET_PARAM: &str = "offset";
/// The last N lines, on log tools.
pub const TAIL_PARAM: &str = "tail";
/// Extra output fields an agent asks for on a read tool (left out of schemas; the instructions say it).
pub const FIELDS_PARAM: &str = "fields";
/// Seconds a run tool waits for the run to finish.
pub const WAIT_PARAM: &str = "wait";
/// `confirm`: listed and accepted only on tools devgate confirms, where it is ignored: an agent's word
/// is never consent (see [`crate::confirm`]). It stays for agents written when it was how to confirm,
/// and its presence tells an agent that the user will be asked; the server instructions say so once.
pub const CONFIRM_PARAM: &str = "confirm";
/// The page size of a list: not added by the engine but declared by each list in its catalog (hidden,
/// with its default and maximum). The engine knows the name because a cursor is not bound to it (the
/// cursor's URL keeps the size it was issued with) and the server instructions state the sizes once.
pub const PAGE_SIZE_PARAM: &str = "limit";
/// The longest `wait`, in seconds.
pub const MAX_WAIT_SECS: i64 = 600;

/// How an engine parameter's value is checked.
#[derive(Debug, Clone, Copy)]
pub enum Check {
    /// A cursor devgate issued (a string; opened and verified by the gateway).
    Cursor,
    Integer {
        minimum: i64,
        maximum: Option<i64>,
    },
    Boolean,
    /// A list of dot paths (see [`crate::shape::parse_fields`]).
    Fields,
}

/// Where an engine parameter appears in `tools/list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// In the schema of every tool that takes it.
    Always,
    /// Only on tools devgate confirms.
    WhenConfirmed,
    /// Never: the server instructions describe it once.
    Never,
}

/// One parameter the engine adds.
#[derive(Debug)]
pub struct EngineParam {
    pub name: &'static str,
    /// Which tools take it.
    takes: fn(&Tool) -> bool,
    /// Its JSON type in a tool's input schema.
    pub json_type: &'static str,
    pub listed: Listed,
    /// Named among the expected arguments when an agent sends an unknown one.
    pub suggested: bool,
    pub check: Check,
}

impl EngineParam {
    /// Whether `tool` takes this parameter.
    pub fn taken_by(&self, tool: &Tool) -> bool {
        (self.takes)(tool)
    }
}

/// Every parameter the engine adds, in the order schemas and messages name them.
pub const ENGINE_PARAMS: [EngineParam; 6] = [
    EngineParam {
        name: CURSOR_PARAM,
        takes: |t| t.paginated,
        json_type: "string",
        listed: Listed::Always,
        suggested: true,
        check: Check::Cursor,
    },
    EngineParam {
        name: OFFSET_PARAM,
        takes: Tool::is_text,
        json_type: "integer",
        listed: Listed::Always,
        suggested: true,
        check: Check::Integer {
            minimum: 0,
            maximum: None,
        },
    },
    EngineParam {
        name: TAIL_PARAM,
        takes: |t| t.spec.text_tail,
        json_type: "integer",
        listed: Listed::Always,
        suggested: true,
        check: Check::Integer {
            minimum: 1,
            maximum: Some(100_000),
        },
    },
    EngineParam {
        name: FIELDS_PARAM,
        takes: Tool::takes_fields,
        json_type: "array",
        listed: Listed::Never,
        suggested: true,
        check: Check::Fields,
    },
    EngineParam {
        name: WAIT_PARAM,
        takes: |t| t.spec.wait.is_some(),
        json_type: "integer",
        listed: Listed::Always,
        suggested: true,
        check: Check::Integer {
            minimum: 0,
            maximum: Some(MAX_WAIT_SECS),
        },
    },
    EngineParam {
        name: CONFIRM_PARAM,
        takes: |t| !t.spec.annotations.read_only,
        json_type: "boolean",
        listed: Listed::WhenConfirmed,
        suggested: false,
        check: Check::Boolean,
    },
];

/// Whether `name` is a parameter the engine adds (reserved: no catalog may declare it).
pub fn is_engine_param(name: &str) -> bool {
    ENGINE_PARAMS.iter().any(|p| p.name == name)
}

/// The engine parameters `tool` takes.
pub fn engine_params_of(tool: &Tool) -> impl Iterator<Item = &'static EngineParam> + '_ {
    ENGINE_PARAMS.iter().filter(move |p| p.taken_by(tool))
}
