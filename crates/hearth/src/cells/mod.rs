//! Cells on other machines: the server's mutual-TLS endpoint for them ([`endpoint`]), the
//! cell side that joins and talks to it ([`remote`]), their certificate authority and join
//! token ([`pki`]), and what they say to each other ([`wire`]).

pub mod endpoint;
pub mod pki;
pub mod remote;
pub mod wire;
