<?php
// The app's users: id => username + password hash (alice-pw, bob-pw).
return [
    '42' => ['username' => 'alice', 'password_hash' => '$2y$10$e1UI7UPYpOeb9uZbJ6sFi.LZUaXBF9eZnSp3hqD12uywEu7UwF.Vm'],
    '43' => ['username' => 'bob',   'password_hash' => '$2y$10$Ip6zio3ILjVCJNKnRLAVD.EFziZji7YwsG9CqMqqC5BElDbugLlfu'],
];
