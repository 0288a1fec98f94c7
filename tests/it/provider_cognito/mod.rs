//! Amazon Cognito: the fake's SigV4 verifier against AWS's published vectors and its model
//! checks (`spec`), the client against the fake (`client`, `check`), and the migration end to
//! end against the fake (`migration`).

mod check;
mod client;
mod migration;
mod spec;
