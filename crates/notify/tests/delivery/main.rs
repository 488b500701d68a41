//! Delivery against real receivers on 127.0.0.1: an HTTP server, an HTTPS
//! server, and an SMTP server, each written for the tests; and the
//! destination policy that keeps receivers away from such addresses unless
//! they are allowed.

mod config;
mod destination;
mod http;
mod smtp;
mod support;
mod tls;
