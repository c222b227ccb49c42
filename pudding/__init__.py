"""pudding: builds and terminates EC2 instances on request."""
