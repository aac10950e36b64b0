"""Human review: the queue service, items, verdicts and separation of duties, the suggest-mode
report and labels."""
