"""Operations: health, progress of long tasks, the audit log, rate limits."""
