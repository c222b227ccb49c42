"""pudding's use of AWS: the EC2 calls the workers make, on boto3 (see `ec2`)."""
