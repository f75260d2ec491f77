//! Where the sealing key comes from. (Implementation in progress.)
