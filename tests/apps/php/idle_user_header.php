<?php
// The idlegate integration: name the signed-in user on every response.
// header_register_callback runs just before PHP sends the headers, i.e. after
// the page code ran: the login response already has the new user, the logout
// response (which emptied $_SESSION) has none. idlegate strips the header.
header_register_callback(function (): void {
    if (!empty($_SESSION['user_id'])) {
        header('X-Idle-User: ' . $_SESSION['user_id']);
    }
});
