//! Fake providers: real HTTP servers on loopback that follow the providers' published contracts.
