"""Local AWS stack (moto S3, dynalite DynamoDB) for the demo and the tests."""
