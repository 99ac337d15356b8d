"""The password of the test user `alice` the `user` fixture creates."""

PASSWORD = "correct horse battery staple"
