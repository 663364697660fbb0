mod pipeline;

pub use pipeline::*;
