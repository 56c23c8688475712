<?php
// DIY_LAST_ACTIVITY=1: what teams do today instead of idlegate — write the
// session's last activity to a table on every request (one DB write per
// request), then scan it from cron to find who went idle.
function diy_record_activity(string $dir): void
{
    if (empty($_SESSION['user_id'])) return;
    $db = new PDO("sqlite:$dir/diy.sqlite", null, null, [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION, PDO::ATTR_TIMEOUT => 20]);
    $db->exec('CREATE TABLE IF NOT EXISTS session_activity (session_id TEXT PRIMARY KEY, user_id TEXT, last_activity INTEGER)');
    $db->prepare('INSERT INTO session_activity (session_id, user_id, last_activity) VALUES (?, ?, ?)
                  ON CONFLICT(session_id) DO UPDATE SET user_id = excluded.user_id, last_activity = excluded.last_activity')
       ->execute([session_id(), $_SESSION['user_id'], time()]);
}
