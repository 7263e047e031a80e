//! `usher sign`: makes a token with a private key. (Stub.)
