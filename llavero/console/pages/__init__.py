"""Console pages, one router per area: sign-in, keys, users, audit."""
