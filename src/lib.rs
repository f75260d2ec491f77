//! devgate: an MCP gateway for Buddy.Works and Bitbucket Cloud.
pub mod catalog;
pub mod shape;
pub mod sim;
