//! Access control and CORS (placeholder: every group open; being implemented).

use spin_sdk::http::{IncomingRequest, Response};

use crate::Group;
use crate::error::ApiError;

/// Lets a request through or says why not.
pub fn check(_group: Group, _req: &IncomingRequest) -> Result<(), ApiError> {
    Ok(())
}

/// The CORS policy for one request's `Origin`.
pub struct Cors;

impl Cors {
    /// Reads the allowed origins for this request's origin.
    pub fn load(_origin: Option<&str>) -> Cors {
        Cors
    }

    /// Answers an `OPTIONS` preflight.
    pub fn preflight(&self, _req: &IncomingRequest) -> Response {
        Response::builder().status(204).build()
    }

    /// Adds CORS headers to an answer.
    pub fn decorate(&self, response: Response) -> Response {
        response
    }
}
