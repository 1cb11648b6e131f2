"""Where sessions are kept: the database URL and engine (`database`), the tables (`schema`),
reading and writing sessions (`store`), and the lock that makes one writer (`locking`).
"""
