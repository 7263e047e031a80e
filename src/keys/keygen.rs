//! `usher keygen`: makes an ES256 key pair. (Stub.)
