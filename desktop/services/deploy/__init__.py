"""Deploy, update and delete a TinyLlama stack with CloudFormation. Qt-free.

One module per job: `errors` (botocore failures in words), `bucket` (the bootstrap
bucket, uploads, emptying a data bucket), `changes` (change sets, direct plans, planned
adds, delete plans), `events` (following a stack operation's events), `stack` (the
`StackDeployer`: one account and region's clients and the operations on them), `users`
(the first Cognito user) and `flow` (the steps, in order, that the wizard and
`tinyllama deploy` both call).
"""
