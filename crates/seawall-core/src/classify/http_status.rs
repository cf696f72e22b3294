use http::{Response, StatusCode};

use super::{Classify, Outcome};

/// Classifies HTTP responses by status code.
///
/// By default `5xx` and `429 Too Many Requests` are failures and every other
/// status is a success; an `Err` from the service (a transport error) is
/// always a failure. Single codes can be moved between the three outcomes.
///
/// ```
/// use http::{Response, StatusCode};
/// use seawall_core::{Classify, Outcome};
/// use seawall_core::classify::HttpStatus;
///
/// let classify = HttpStatus::new()
///     .not_failure(StatusCode::NOT_IMPLEMENTED) // 501 says nothing about health
///     .ignore(StatusCode::NOT_FOUND);
///
/// let res = |code: u16| Ok::<_, ()>(Response::builder().status(code).body(()).unwrap());
/// assert_eq!(classify.classify(&res(503)), Outcome::Failure);
/// assert_eq!(classify.classify(&res(429)), Outcome::Failure);
/// assert_eq!(classify.classify(&res(501)), Outcome::Success);
/// assert_eq!(classify.classify(&res(404)), Outcome::Ignore);
/// assert_eq!(classify.classify(&res(200)), Outcome::Success);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpStatus {
    // One bit per status code 0..1024 (valid codes are 100..=999).
    failure: [u64; 16],
    ignore: [u64; 16],
}

impl Default for HttpStatus {
    fn default() -> Self {
        Self::new()
    }
}

fn bit(code: StatusCode) -> (usize, u64) {
    let c = code.as_u16() as usize;
    (c / 64, 1u64 << (c % 64))
}

impl HttpStatus {
    /// `5xx` and `429` are failures; everything else is a success.
    pub fn new() -> Self {
        let mut this = HttpStatus {
            failure: [0; 16],
            ignore: [0; 16],
        };
        for code in 500..=599u16 {
            this = this.failure(StatusCode::from_u16(code).expect("500..=599 are valid codes"));
        }
        this.failure(StatusCode::TOO_MANY_REQUESTS)
    }

    /// Counts `code` as a failure.
    pub fn failure(mut self, code: StatusCode) -> Self {
        let (i, b) = bit(code);
        self.failure[i] |= b;
        self.ignore[i] &= !b;
        self
    }

    /// Counts `code` as a success.
    pub fn not_failure(mut self, code: StatusCode) -> Self {
        let (i, b) = bit(code);
        self.failure[i] &= !b;
        self.ignore[i] &= !b;
        self
    }

    /// Counts `code` as neither a success nor a failure.
    pub fn ignore(mut self, code: StatusCode) -> Self {
        let (i, b) = bit(code);
        self.failure[i] &= !b;
        self.ignore[i] |= b;
        self
    }

    /// The outcome of a response with this status.
    pub fn outcome(&self, code: StatusCode) -> Outcome {
        let (i, b) = bit(code);
        if self.failure[i] & b != 0 {
            Outcome::Failure
        } else if self.ignore[i] & b != 0 {
            Outcome::Ignore
        } else {
            Outcome::Success
        }
    }
}

impl<B, E> Classify<Response<B>, E> for HttpStatus {
    fn classify(&self, result: &Result<Response<B>, E>) -> Outcome {
        match result {
            Ok(res) => self.outcome(res.status()),
            Err(_) => Outcome::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_cover_every_5xx_and_429_only() {
        let c = HttpStatus::new();
        for code in 100..=999u16 {
            let status = StatusCode::from_u16(code).unwrap();
            let want = if (500..=599).contains(&code) || code == 429 {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            assert_eq!(c.outcome(status), want, "status {code}");
        }
    }

    #[test]
    fn transport_errors_are_failures() {
        let r: Result<Response<()>, &str> = Err("connection reset");
        assert_eq!(HttpStatus::new().classify(&r), Outcome::Failure);
    }

    #[test]
    fn moving_a_code_moves_it_out_of_the_other_sets() {
        let c = HttpStatus::new()
            .ignore(StatusCode::SERVICE_UNAVAILABLE)
            .failure(StatusCode::NOT_FOUND)
            .not_failure(StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(c.outcome(StatusCode::SERVICE_UNAVAILABLE), Outcome::Ignore);
        assert_eq!(c.outcome(StatusCode::NOT_FOUND), Outcome::Failure);
        assert_eq!(c.outcome(StatusCode::TOO_MANY_REQUESTS), Outcome::Success);
        let c = c.failure(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(c.outcome(StatusCode::SERVICE_UNAVAILABLE), Outcome::Failure);
    }
}
