"""Where training reads events from: a DynamoDB scan, a DynamoDB export in S3, or MovieLens ratings."""
