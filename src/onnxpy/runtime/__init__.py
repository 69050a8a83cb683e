"""Session, plan and executor."""
