"""The volunteers' community: Talk (boards, candidate threads, hashtags, flags to the
science team, moderation, notifications)."""
