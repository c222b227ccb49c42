"""`pudding dev` (make run): the whole system on one machine, without an AWS account."""
