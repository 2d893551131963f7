"""The cloud side as code: the AWS stack of deploy/aws/ and the repository variables it sets."""
