//! Request lines of the control socket, each bounded: a peer cannot make the daemon hold an
//! endless line. Requests from outside the admins are a few hundred bytes; an admin's
//! baseline import carries a whole baseline file.
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncReadExt as _};

/// The longest request line of a peer that is neither root nor in the socket's group.
pub const MAX_LINE: u64 = 64 * 1024;
/// The longest request line of an admin (a baseline import, its file inline).
pub const MAX_ADMIN_LINE: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("request line longer than {limit} bytes")]
    TooLong { limit: u64 },
    #[error("request line is not UTF-8")]
    NotUtf8,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The next line of `input` without its newline, `None` at the end; a line over `limit`
/// bytes is an error (the rest of it is not read).
pub async fn next_line<R: AsyncBufRead + Unpin>(
    input: &mut R,
    limit: u64,
) -> Result<Option<String>, LineError> {
    let mut line = Vec::new();
    let read = input.take(limit + 1).read_until(b'\n', &mut line).await?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() as u64 > limit {
        return Err(LineError::TooLong { limit });
    }
    String::from_utf8(line).map(Some).map_err(|_| LineError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_up_to_the_limit_pass_and_longer_ones_are_refused() {
        let mut input: &[u8] = b"{\"a\":1}\nabcd\nlast";
        assert_eq!(next_line(&mut input, 7).await.unwrap().as_deref(), Some("{\"a\":1}"));
        assert_eq!(next_line(&mut input, 7).await.unwrap().as_deref(), Some("abcd"));
        assert_eq!(next_line(&mut input, 7).await.unwrap().as_deref(), Some("last"));
        assert_eq!(next_line(&mut input, 7).await.unwrap(), None);

        // A line of exactly the limit, with its newline, is whole.
        let mut input: &[u8] = b"1234567\n";
        assert_eq!(next_line(&mut input, 7).await.unwrap().as_deref(), Some("1234567"));
        let endless = vec![b'x'; 1 << 20];
        let err = next_line(&mut endless.as_slice(), 1024).await.unwrap_err();
        assert!(matches!(err, LineError::TooLong { limit: 1024 }), "{err}");
        let mut input: &[u8] = b"\xff\xfe\n";
        assert!(matches!(next_line(&mut input, 7).await, Err(LineError::NotUtf8)));
    }
}
