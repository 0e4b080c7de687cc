"""The email channel: SMTP listener, raw-message endpoint, mail parsing."""
