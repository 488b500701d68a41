//! Delivery against real receivers on 127.0.0.1: an HTTP server, an HTTPS
//! server, and an SMTP server, each written for the tests.

mod config;
mod http;
mod smtp;
mod support;
mod tls;
